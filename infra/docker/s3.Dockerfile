# The S3-compatible server of the stack: OpenStack Swift + s3api from Debian (what the test suite
# runs), served by infra/s3 on 0.0.0.0:8080. Password of test:tester: $WXC_S3_SECRET.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends swift-proxy swift-account swift-container \
      swift-object memcached \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/wxcompress
COPY infra ./infra
EXPOSE 8080
CMD ["python3", "-m", "infra.s3", "--root", "/data", "--host", "0.0.0.0", "--port", "8080"]
