# The bridge and the query service (and fleetctl): one image, the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# uid/gid 1883 is the `mosquitto` user of the eclipse-mosquitto image: the broker account files
# fleetctl writes here (mode 0600) on the shared volume stay readable by the broker.
RUN groupadd --system --gid 1883 fleet \
 && useradd --system --uid 1883 --gid fleet --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin fleet \
 && mkdir -p /data /srv/fleet \
 && chown fleet:fleet /data

# .dockerignore lets in only what `pip install` needs.
COPY . /src/
RUN pip install "/src[serve]" && rm -rf /src

USER fleet
# An empty working directory: no stray config.toml is picked up; configuration comes from the
# FLEET_* environment (or FLEET_CONFIG pointing at a mounted file).
WORKDIR /srv/fleet
ENV FLEET_LOCAL_DATA_DIR=/data
EXPOSE 8080
CMD ["fleetctl", "--help"]
