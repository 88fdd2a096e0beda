# Python side: Airflow components, Spark master/workers (pyspark's own jars) and the Argus
# engine, all from the pinned requirements.lock. The project itself is mounted at
# /opt/argus/project, so DAGs, plugins and jobs are the checkout's.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven procps \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/argus/venv PATH=/opt/argus/venv/bin:$PATH PYTHONPATH=/opt/argus/project/include \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv $VIRTUAL_ENV && pip install -q uv==0.13.9 \
    && uv pip sync --python $VIRTUAL_ENV/bin/python /tmp/requirements.lock
# Spark's Kafka connector, resolved from the same pom as the local stack
COPY include/jvm/spark-kafka/pom.xml /tmp/spark-kafka/pom.xml
RUN mvn -B -q -f /tmp/spark-kafka/pom.xml dependency:copy-dependencies \
      -DoutputDirectory=/opt/argus/jvm/spark-kafka/lib -DincludeScope=runtime && rm -rf /root/.m2
RUN useradd --system --uid 10001 --create-home argus
USER argus
WORKDIR /opt/argus/project
