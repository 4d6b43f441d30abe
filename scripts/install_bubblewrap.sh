#!/bin/sh
# bubblewrap (Debian/Ubuntu package `bubblewrap`) isolates the students' code while
# grader/grade.py grades it. Installs it when `bwrap` is missing (needs root or sudo).
set -e
command -v bwrap >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends bubblewrap
bwrap --version
