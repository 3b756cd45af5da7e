# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
KAFKA_JARS := kafka/lib/.fetched
REGISTRY_JARS := registry/lib/.fetched

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Apache Kafka's broker jars from Maven Central (kafka/pom.xml pins the version), fetched once.
$(KAFKA_JARS): kafka/pom.xml
	rm -rf kafka/lib
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=lib
	touch $(KAFKA_JARS)

# Apicurio Registry, the tests' real Schema Registry (registry/pom.xml pins it), unpacked once.
$(REGISTRY_JARS): registry/pom.xml
	rm -rf registry/lib
	mvn -q -B -f registry/pom.xml dependency:unpack
	touch $(REGISTRY_JARS)

.PHONY: demo test test-embedded test-kafka test-next-year breaks kafka registry jars lint bench mutants
demo: $(STAMP)
	$(VENV)/bin/vvv demo

kafka: $(KAFKA_JARS)

registry: $(REGISTRY_JARS)

# The jars the suite starts where Java and Maven are: Apache Kafka and the schema registry. Without
# them the tests that need them say so and are skipped; in CI they must run.
jars:
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(MAKE) --no-print-directory $(KAFKA_JARS) $(REGISTRY_JARS); \
	elif [ -n "$$CI" ]; then \
		echo "CI needs Java 17+ and Maven for Apache Kafka and the schema registry" >&2; exit 1; \
	else \
		echo "jars: skipped, needs Java 17+ and Maven (the registry tests and the Apache Kafka run are skipped)"; \
	fi

# Lint, the jars (Apache Kafka, the schema registry), the whole suite on the embedded broker and again on
# Apache Kafka, once more with the clock a year ahead (embedded), then the deliberate breaks.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory jars
	$(MAKE) --no-print-directory test-embedded
	$(MAKE) --no-print-directory test-kafka
	$(MAKE) --no-print-directory test-next-year
	$(MAKE) --no-print-directory breaks

test-embedded: $(STAMP) jars
	TEST_BROKER=embedded $(VENV)/bin/python -m pytest -q -n 2

# The suite with every test process's clock a year ahead (tests/clock/): green on any day, not only today.
test-next-year: $(STAMP) jars
	TEST_BROKER=embedded $(VENV)/bin/python -m pytest -q -n 2 --clock-ahead 365

# Without Java 17+ and Maven the Apache Kafka run is skipped with one line; in CI it must run.
test-kafka: $(STAMP)
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(MAKE) --no-print-directory jars && TEST_BROKER=kafka $(VENV)/bin/python -m pytest -q; \
	elif [ -n "$$CI" ]; then \
		echo "test-kafka: CI needs Java 17+ and Maven to run the suite on Apache Kafka" >&2; exit 1; \
	else \
		echo "test-kafka: skipped, needs Java 17+ and Maven (the embedded-broker run above still counts)"; \
	fi

# Each promise broken on purpose in a copy of the tree, one at a time: a test must go red (scripts/breaks.py).
breaks: $(STAMP)
	$(VENV)/bin/python scripts/breaks.py

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Every benchmark in one run, then one table of figures, goals and ratios (bench/run.py).
bench: $(STAMP)
	$(VENV)/bin/python bench/run.py

# Mutation testing of the pure modules (mutmut; by hand, not in CI): the score per module, the mutants alive.
mutants: $(STAMP)
	$(VENV)/bin/python scripts/mutants.py
