"""Start-up errors that tell the truth, one line each: nothing listening, TLS failed, authentication
failed, not authorised, a topic missing; and the hook names a configuration error as one."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest

from vvv_core import cli
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.broker import free_port
from vvv_core.hook import background_processing


@pytest.fixture
def tls_server(tmp_path):
    """A TLS listener with a self-signed certificate no client trusts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_nothing_listening(capsys):
    assert cli.main(["status", "--bootstrap", f"127.0.0.1:{free_port()}"]) == 1
    err = one_line(capsys)
    assert "no Kafka broker reachable" in err and "Connection refused" in err


def test_tls_failed(capsys, tls_server):
    assert cli.main(["status", "--bootstrap", tls_server, "-X", "security.protocol=SSL"]) == 1
    err = one_line(capsys)
    assert err.startswith(f"vvv: error: TLS with the broker at {tls_server} failed (SSL handshake failed")
    assert "certificate verify failed" in err and "ssl.* settings" in err


def test_the_hook_names_a_configuration_error_as_one_and_keeps_the_events(settings, cron_db):
    bad = settings.replace(kafka={**settings.kafka, "nosuch.property": "1"})
    report = background_processing([{"video_id": "okvideo0001"}], [], cron_db, bad)
    assert report.error.startswith('configuration error: No such configuration property: "nosuch.property"')
    assert (report.delivered, report.queued) == (0, 1)
    assert background_processing([], [], cron_db, settings).delivered == 1  # delivered once it is fixed


SASL = {
    # The listener named PLAINTEXT speaks SASL (PLAIN); the controller's stays plain.
    "listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,HOST:PLAINTEXT",
    "sasl.enabled.mechanisms": "PLAIN",
    "sasl.mechanism.inter.broker.protocol": "PLAIN",
    "listener.name.plaintext.plain.sasl.jaas.config": (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
    ),
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:ANONYMOUS",  # ANONYMOUS: the node itself, on the plain controller listener
    "allow.everyone.if.no.acl.found": "false",
}


@pytest.mark.apache_kafka_only  # a broker with SASL and ACLs
@pytest.mark.timeout(180)
def test_authentication_failed_and_not_authorised(capsys):
    admin = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"}
    admin |= {"sasl.username": "admin", "sasl.password": "admin-secret"}
    with ApacheKafka(properties=SASL, client=admin) as broker:

        def vvv(user: str, password: str, *args: str) -> int:
            sasl = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN"]
            credentials = ["-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]
            return cli.main([*args, "--bootstrap", broker.bootstrap, *sasl, *credentials])

        assert vvv("alice", "wrong", "topics") == 1
        err = one_line(capsys)
        assert f"the broker at {broker.bootstrap} refused the client's credentials" in err
        assert "Authentication failed" in err and "sasl.* settings" in err

        assert vvv("alice", "alice-secret", "topics") == 1  # known, but no ACL lets her create topics
        err = one_line(capsys)
        assert err.startswith("vvv: error: not authorised to create topic vvv.") and "ACLs" in err

        assert vvv("admin", "admin-secret", "topics") == 0
        capsys.readouterr()
        assert vvv("alice", "alice-secret", "dlq", "list", "scoring") == 1  # the topic exists; she may not read it
        assert one_line(capsys).startswith("vvv: error: not authorised to read topic vvv.scoring.dlq")


def test_a_topic_missing(settings, capsys, monkeypatch):
    monkeypatch.setenv("VVV_NAMESPACE", settings.namespace + "x")
    assert cli.main(["status", "--bootstrap", settings.bootstrap]) == 1
    assert "does not exist" in one_line(capsys)
