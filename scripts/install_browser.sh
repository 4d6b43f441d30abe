#!/bin/sh
# Install the headless browser the browser test (tests/test_browser.py) drives:
# Debian's chromium and its chromedriver. No browser is ever downloaded from elsewhere.
set -e
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
chromium --version
chromedriver --version
