# syntax=docker/dockerfile:1
# botkit's image: `botkit serve` as an unprivileged user, installed from a wheel.
#
#   docker build -t botkit .
#   docker run --rm -p 8080:8080 botkit                  # the demo bot on the web channel
#   docker run --rm -p 8080:8080 -v "$PWD:/bots:ro" -v botkit-data:/data \
#       botkit serve --host 0.0.0.0 mybot                 # the bots of your bot home
#
# Arguments after the image name replace CMD and go to `botkit`. In a container,
# `botkit serve` must listen on 0.0.0.0 (its default, 127.0.0.1, cannot be reached
# from outside), so keep `--host 0.0.0.0` whenever you give your own; keep the port
# at 8080, which the health check asks, and map it with -p.
#
# The bot home (prompts/, bots/, .env) is /bots: mount yours over the demo there,
# read-only if you like. Conversations go to SQLite in the volume /data, unless
# BOTKIT_STORE_URL says otherwise: several workers share redis://HOST:6379/0.
# `docker stop` waits 10 s before it kills; serve takes up to 10 s to finish the
# replies under way, so give it a little more (--stop-timeout 15).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY botkit botkit
# A wheel of botkit and one of everything it needs, so that the image installs them
# with no compiler, no network and no source tree.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[all]"

FROM python:${PYTHON_VERSION}-slim
# A bind mount, not a COPY: the wheels never become a layer of the image. They are the
# only candidates (--no-index), so they pin every version: hence no DL3013.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --root-user-action ignore \
        "botkit[all]" \
    && groupadd --system --gid 10001 botkit \
    && useradd --system --uid 10001 --gid botkit --no-create-home --home-dir /nonexistent botkit \
    && mkdir /data \
    && chown botkit:botkit /data
COPY prompts /bots/prompts
COPY bots /bots/bots

ENV BOTKIT_HOME=/bots \
    BOTKIT_STORE_URL=sqlite:////data/botkit.db \
    PYTHONUNBUFFERED=1
WORKDIR /bots
VOLUME ["/data"]
# Numeric, so that an orchestrator can check it is not root (runAsNonRoot).
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["botkit"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "nimbus"]
