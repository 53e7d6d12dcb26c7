#!/usr/bin/env bash
# What the OpenStack API's tests read, from PyPI, pinned, into .tools/ (never into the repository):
# - Nova's api-sample templates (the exact response shapes per microversion), unzipped from the nova
#   wheel into .tools/nova/api_samples;
# - Nova's versioned notification samples (doc/notification_samples), from the nova sdist of the same
#   version (its sha256 checked), into .tools/nova/notification_samples;
# - the real python-openstackclient and openstacksdk, in the venv .tools/osc (bin/openstack).
set -euo pipefail
cd "$(dirname "$0")/.."
NOVA=34.0.0
OSC=10.5.0
SDK=4.22.0
stamp=.tools/openstack-tools.installed
NOVA_SDIST_SHA256=919eef77cda4ce0cc4746a5853b5d9341ebd0ae37bc8b1939eb77d17727c00df
want="nova==$NOVA osc==$OSC sdk==$SDK samples"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x .tools/osc/bin/openstack && -d .tools/nova/api_samples \
  && -d .tools/nova/notification_samples ]]; then
  echo "openstack tools present ($want)"
  exit 0
fi
mkdir -p .tools/nova
if [[ ! -f .tools/nova/nova-$NOVA-py3-none-any.whl ]]; then
  python3 -m pip download --quiet --no-deps "nova==$NOVA" -d .tools/nova
fi
rm -rf .tools/nova/api_samples .tools/nova/unzipped
python3 - "$NOVA" <<'PY'
import sys, zipfile, os
prefix = 'nova/tests/functional/api_sample_tests/api_samples/'
with zipfile.ZipFile(f'.tools/nova/nova-{sys.argv[1]}-py3-none-any.whl') as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith('/'):
            out = os.path.join('.tools/nova/api_samples', name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, 'wb') as f:
                f.write(z.read(name))
PY
if [[ ! -f .tools/nova/nova-$NOVA.tar.gz ]]; then
  python3 -m pip download --quiet --no-deps --no-binary :all: "nova==$NOVA" -d .tools/nova
fi
echo "$NOVA_SDIST_SHA256  .tools/nova/nova-$NOVA.tar.gz" | sha256sum --check --quiet
rm -rf .tools/nova/notification_samples
mkdir -p .tools/nova/notification_samples
tar -xzf ".tools/nova/nova-$NOVA.tar.gz" -C .tools/nova/notification_samples --strip-components=3 \
  "nova-$NOVA/doc/notification_samples"
if [[ ! -x .tools/osc/bin/openstack ]]; then
  python3 -m venv .tools/osc
fi
.tools/osc/bin/pip install --quiet "python-openstackclient==$OSC" "openstacksdk==$SDK"
echo "$want" >"$stamp"
echo "openstack tools installed ($want)"
