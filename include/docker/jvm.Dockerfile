# The JVM services (Kafka, ZooKeeper, HDFS, HBase + Thrift) from the same Maven poms as the
# local stack: one image, each service's jars in /opt/argus/jvm/<pom>/lib.
FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY include/jvm/ jvm/
RUN for pom in kafka hbase hdfs; do \
      mvn -B -q -f jvm/$pom/pom.xml dependency:copy-dependencies \
        -DoutputDirectory=/opt/argus/jvm/$pom/lib -DincludeScope=runtime || exit 1; \
    done

FROM eclipse-temurin:17-jre
COPY --from=jars /opt/argus/jvm /opt/argus/jvm
RUN useradd --system --uid 10001 --home /data argus && mkdir -p /data && chown argus /data
USER argus
WORKDIR /data
