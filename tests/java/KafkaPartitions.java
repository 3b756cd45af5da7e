// Kafka's own producer partitioner, as a single-file program (`java -cp 'kafka/lib/*' KafkaPartitions.java N`):
// for each line of stdin (a key in hex), the partition of N that the Java producer gives that key.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HexFormat;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class KafkaPartitions {
    public static void main(String[] args) throws Exception {
        int partitions = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            System.out.println(BuiltInPartitioner.partitionForKey(HexFormat.of().parseHex(line), partitions));
        }
    }
}
