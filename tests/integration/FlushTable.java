// Flushes the memstores of the HBase tables named as arguments (Admin.flush), for the
// integration tests: neither Thrift server has a flush call. Run as a single-file source
// program (java -cp <HBase conf dir>:<HBase jars> FlushTable.java ns:table ...); see
// tests/integration/hbase_checks.py.
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hbase.HBaseConfiguration;
import org.apache.hadoop.hbase.TableName;
import org.apache.hadoop.hbase.client.Admin;
import org.apache.hadoop.hbase.client.Connection;
import org.apache.hadoop.hbase.client.ConnectionFactory;

public class FlushTable {
    public static void main(String[] args) throws Exception {
        Configuration conf = HBaseConfiguration.create();
        try (Connection conn = ConnectionFactory.createConnection(conf); Admin admin = conn.getAdmin()) {
            for (String name : args) {
                admin.flush(TableName.valueOf(name));
                System.out.println("flushed " + name);
            }
        }
    }
}
