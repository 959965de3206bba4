#!/usr/bin/env bash
# Installs what the integration tests' real servers (and the browser test) need and is missing; does nothing when all
# is there. Debian packages with apt (as root); Python servers (moto, pyftpdlib) come with
# requirements.txt. The tests start every server themselves on loopback with throwaway config.
set -euo pipefail

need=()
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # the process cluster's broker (make cluster)
# the browser tests (tests/test_ui_browser.py): Playwright drives Debian's Chromium (it cannot
# download its own browsers here)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  echo "test services: all installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test services: missing ${need[*]}; run as root (apt-get install ${need[*]}) or install them by hand" >&2
  exit 1
fi
echo "test services: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# the packages' own services are not wanted: the tests run private instances
for svc in dovecot ssh; do
  (service "$svc" stop >/dev/null 2>&1 || true)
done
echo "test services: installed ${need[*]}"
