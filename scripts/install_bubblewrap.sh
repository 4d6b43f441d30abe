#!/bin/sh
# bubblewrap (Debian/Ubuntu package `bubblewrap`) isolates the students' code while
# scripts/grade.py grades it. Installs it when `bwrap` is missing (needs root or sudo).
set -e
command -v bwrap >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q bubblewrap
else
    sudo apt-get install -y -q bubblewrap
fi
