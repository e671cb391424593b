#!/usr/bin/env bash
# The Debian packages the test suite runs for real: Prometheus and promtool
# (test/helpers/prometheus.ts runs them from /usr/bin) and the PostgreSQL server
# binaries (test/helpers/postgres.ts starts a throwaway cluster with initdb).
# Run by `npm test` (pretest) and by .ci/run: as root it installs what is
# missing with apt-get; otherwise it says what to install and exits 1, so a
# missing package stops the run with this message instead of failing suites.
set -euo pipefail

missing=()
[[ -x /usr/bin/prometheus && -x /usr/bin/promtool ]] || missing+=(prometheus)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
((${#missing[@]})) || exit 0

command="apt-get install -y --no-install-recommends ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "system packages: the tests need ${missing[*]} (Debian package names) and this machine has no apt-get; install their equivalents, then run the tests again" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "system packages: the tests need the Debian packages ${missing[*]}; install them, then run the tests again:" >&2
  echo "  sudo apt-get update && sudo $command" >&2
  exit 1
fi

echo "system packages: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "system packages: \`apt-get update && $command\` failed (output above); fix that, then run the tests again" >&2
  exit 1
fi
