#!/usr/bin/env bash
# The browser tests' Chromium (Debian's chromium + chromium-driver), installed when missing.
# Never fails the test run: without it (no root, no package mirror) the browser tests skip
# and say why.
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
    >/tmp/genixer-chromium-install.log 2>&1 \
    || echo "could not install chromium (see /tmp/genixer-chromium-install.log): the browser tests will skip"
else
  echo "chromium is missing and cannot be installed here (needs root and apt-get): the browser tests will skip"
fi
exit 0
