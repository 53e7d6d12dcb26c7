#!/usr/bin/env bash
# `make tempest`: Tempest's compute API tests against the whole system as `make start` runs it (fake
# driver, embedded SQLite, a temporary data dir, free loopback ports). Writes tempest.conf and
# accounts.yaml (two admins in project admin; two members in each of projects demo1 and demo2, in
# Keystone-lite's users file), runs `tempest run` at concurrency 1 with test/tempest/include.txt and exclude.txt, leaves
# subunit and JUnit in test-artifacts/, prints the totals and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/install-tempest.sh >/dev/null
TEMPEST=$ROOT/.tools/tempest/bin
PY=$TEMPEST/python
ART=$ROOT/test-artifacts
mkdir -p "$ART"
work=$(mktemp -d -t tempest.XXXXXX)
# A free loopback port below the kernel's ephemeral range (32768 up), not one of "$@": a port from that
# range can be taken by any outgoing connection between the pick and the server's bind.
free_port() {
  "$PY" "$ROOT/scripts/free-port.py" "$@"
}
API_PORT=$(free_port); TPORT=$(free_port "$API_PORT"); UIPORT=$(free_port "$API_PORT" "$TPORT")
URL=http://127.0.0.1:$API_PORT
PW=tempest-secret-pw

# Keystone-lite's users: the token key plus the accounts Tempest uses (pre-provisioned credentials).
"$PY" - "$work/api-users.json" "$PW" <<'PY'
import json, os, sys, base64
users = [
  {"name": n, "password": sys.argv[2], "project": "admin", "roles": ["admin", "member", "reader"]}
  for n in ("admin", "admin2")
] + [
  # Three users a project: Tempest takes its primary (member), reader and manager from one project, alt
  # from another. Keystone-lite has no manager role: the manager account (c) is a member here.
  {"name": f"{p}{u}", "password": sys.argv[2], "project": p, "roles": ["member", "reader"]}
  for p in ("demo1", "demo2") for u in ("a", "b", "c")
]
with open(sys.argv[1], "w") as f:
    json.dump({"tokenKey": base64.b64encode(os.urandom(32)).decode(), "users": users}, f)
os.chmod(sys.argv[1], 0o600)
PY
# Three hosts in one availability zone (nova), so that migrations have somewhere to go.
cat >"$work/fleet.json" <<'JSON'
{ "hosts": [
  { "name": "tempest-1", "availabilityZone": "nova", "vcpus": 16, "memoryMb": 65536, "diskGb": 1000 },
  { "name": "tempest-2", "availabilityZone": "nova", "vcpus": 16, "memoryMb": 65536, "diskGb": 1000 },
  { "name": "tempest-3", "availabilityZone": "nova", "vcpus": 16, "memoryMb": 65536, "diskGb": 1000 }
] }
JSON

export DATA_DIR=$work/data API_PORT API_HOST=127.0.0.1 TEMPORAL_PORT=$TPORT TEMPORAL_UI_PORT=$UIPORT
export TEMPORAL_ADDRESS=127.0.0.1:$TPORT API_USERS_FILE=$work/api-users.json FLEET_FILE=$work/fleet.json
export COMPUTE_SPAWN_SECONDS=${COMPUTE_SPAWN_SECONDS:-0.2} RECONCILE_PERIOD_SECONDS=0 LOG_LEVEL=WARN
unset TEMPORAL_CONFIG_FILE TEMPORAL_PROFILE CONDUCTOR_CODEC_KEY_FILE DATABASE_URL API_PUBLIC_URL
started=$(date +%s)
setsid npx tsx src/workers/launcher.ts >"$work/stack.log" 2>&1 &
stack=$!
cleanup() {
  kill -INT -- "-$stack" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$stack" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$stack" 2>/dev/null || true
  cp "$work/stack.log" "$ART/tempest-stack.log" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Ready: the API answers and every compute service is up.
"$PY" - "$URL" "$PW" "$work" <<'PY'
import json, sys, time, urllib.request
url, pw, work = sys.argv[1:4]
def req(path, token=None, body=None):
    r = urllib.request.Request(url + path, data=json.dumps(body).encode() if body else None,
                               headers={"Content-Type": "application/json", **({"X-Auth-Token": token} if token else {})})
    with urllib.request.urlopen(r, timeout=10) as resp:
        return resp.headers, json.loads(resp.read() or b"null")
deadline = time.time() + 240
while True:
    try:
        h, _ = req("/identity/v3/auth/tokens", body={"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": pw}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        tok = h["X-Subject-Token"]
        _, s = req("/compute/v2.1/os-services", tok)
        up = [x for x in s["services"] if x["binary"] == "nova-compute" and x["state"] == "up"]
        if len(up) >= 3:
            break
    except Exception as e:  # not up yet
        last = e
    if time.time() > deadline:
        sys.exit(f"stack not ready after 240 s: {last!r}")
    time.sleep(1)
_, imgs = req("/image/v2/images", tok)
names = {i["name"]: i["id"] for i in imgs["images"]}
_, fl = req("/compute/v2.1/flavors", tok)
flavors = {f["name"]: f["id"] for f in fl["flavors"]}
img = names.get("cirros") or sorted(names.values())[0]
alt = next((v for k, v in sorted(names.items()) if v != img), img)
with open(f"{work}/ids", "w") as f:
    f.write(f"{img} {alt} {flavors['m1.tiny']} {flavors['m1.small']}\n")
PY
read -r IMAGE IMAGE_ALT FLAVOR FLAVOR_ALT <"$work/ids"
echo "tempest: stack ready at $URL in $(( $(date +%s) - started )) s"

ws=$work/ws
mkdir -p "$ws/etc"
cat >"$ws/etc/accounts.yaml" <<YAML
- {username: admin, project_name: admin, password: $PW, roles: [admin]}
- {username: admin2, project_name: admin, password: $PW, roles: [admin]}
- {username: demo1a, project_name: demo1, password: $PW, roles: [member, reader]}
- {username: demo1b, project_name: demo1, password: $PW, roles: [member, reader]}
- {username: demo2a, project_name: demo2, password: $PW, roles: [member, reader]}
- {username: demo2b, project_name: demo2, password: $PW, roles: [member, reader]}
- {username: demo1c, project_name: demo1, password: $PW, roles: [manager]}
- {username: demo2c, project_name: demo2, password: $PW, roles: [manager]}
YAML
sed -e "s#@WS@#$ws#g" -e "s#@URL@#$URL#g" -e "s#@IMAGE@#$IMAGE#g" -e "s#@IMAGE_ALT@#$IMAGE_ALT#g" \
  -e "s#@FLAVOR@#$FLAVOR#g" -e "s#@FLAVOR_ALT@#$FLAVOR_ALT#g" test/tempest/tempest.conf.in >"$ws/etc/tempest.conf"
cp "$ws/etc/tempest.conf" "$ws/etc/accounts.yaml" "$ART/" 2>/dev/null || true
cat >"$ws/.stestr.conf" <<CONF
[DEFAULT]
test_path=$("$PY" -c 'import os, tempest; print(os.path.dirname(tempest.__file__))')/test_discover
top_dir=$("$PY" -c 'import os, tempest; print(os.path.dirname(os.path.dirname(tempest.__file__)))')
group_regex=([^\.]*\.)*
CONF

# TEMPEST_REGEX (a developer's narrower run) replaces the include list.
if [[ -n ${TEMPEST_REGEX:-} ]]; then select=(--regex "$TEMPEST_REGEX"); else select=(--include-list "$ROOT/test/tempest/include.txt"); fi
cd "$ws"
t0=$(date +%s)
set +e
PATH=$TEMPEST:$PATH "$TEMPEST/tempest" run --config-file "$ws/etc/tempest.conf" --concurrency 1 \
  "${select[@]}" --exclude-list "$ROOT/test/tempest/exclude.txt" \
  --subunit >"$ART/tempest.subunit"
rc=$?
set -e
"$TEMPEST/subunit2junitxml" <"$ART/tempest.subunit" >"$ART/tempest-junit.xml" || true
cp "$ws/tempest.log" "$ART/tempest.log" 2>/dev/null || true
"$TEMPEST/subunit2pyunit" <"$ART/tempest.subunit" 2>&1 | grep -E '^(FAIL|ERROR):' || true
totals_ok=0
"$PY" - "$ART/tempest.subunit" "$(( $(date +%s) - t0 ))" "$ART/tempest-totals.json" <<'PY' || totals_ok=1
import json, sys, subunit, testtools
from testtools import StreamSummary
s = StreamSummary()
with open(sys.argv[1], "rb") as f:
    res = testtools.CopyStreamResult([s])
    res.startTestRun(); subunit.ByteStreamToStreamResult(f, non_subunit_name="stdout").run(res); res.stopTestRun()
failed = len(s.errors) + len(s.failures)
skipped = len(s.skipped)
passed = s.testsRun - failed - skipped
print(f"tempest: {passed} passed, {failed} failed, {skipped} skipped ({sys.argv[2]} s)")
# The totals for .ci/run's closing line (scripts/test-summary.ts).
with open(sys.argv[3], "w") as out:
    json.dump({"passed": passed, "failed": failed, "skipped": skipped}, out)
for t, _ in s.errors + s.failures: print("  FAILED", t.id())
sys.exit(1 if failed or s.testsRun == 0 else 0)
PY
# SCHEMATHESIS=1: Schemathesis (pinned, .tools/schemathesis) against the API's OpenAPI document on the
# same stack, as the admin: no 5xx and responses matching the document; a fixed example count and seed.
st_rc=0
if [[ ${SCHEMATHESIS:-0} == 1 ]]; then
  bash "$ROOT/scripts/install-schemathesis.sh" >/dev/null
  token=$("$PY" - "$URL" "$PW" <<'PY'
import json, sys, urllib.request
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": sys.argv[2]}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
r = urllib.request.Request(sys.argv[1] + "/identity/v3/auth/tokens", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(r).headers["X-Subject-Token"])
PY
)
  seed=${SCHEMATHESIS_SEED:-20261206}
  echo "schemathesis: seed $seed, ${SCHEMATHESIS_EXAMPLES:-10} examples per operation"
  t1=$(date +%s)
  # Its report goes to a file (printed whole on failure): its closing line looks like pytest's.
  "$ROOT/.tools/schemathesis/bin/st" run "$URL/openapi.json" --url "$URL" -H "X-Auth-Token: $token" \
    --checks not_a_server_error,response_schema_conformance --max-examples "${SCHEMATHESIS_EXAMPLES:-10}" \
    --seed "$seed" --report junit --report-junit-path "$ART/schemathesis-junit.xml" \
    >"$ART/schemathesis.log" 2>&1 || st_rc=$?
  [[ $st_rc -eq 0 ]] || cat "$ART/schemathesis.log"
  cases=$(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$ART/schemathesis.log" | tail -1 || true)
  echo "schemathesis: ${cases:-no cases counted}, exit $st_rc ($(( $(date +%s) - t1 )) s); report in test-artifacts/schemathesis.log"
  # The "no 5xx" pass against Nova's own request schemas for the paths we serve (scripts/nova-openapi.py
  # builds the description from the pinned nova sdist that install-openstack-tools.sh fetches).
  bash "$ROOT/scripts/install-openstack-tools.sh" >/dev/null
  "$PY" "$ROOT/scripts/nova-openapi.py" "$ROOT"/.tools/nova/nova-*.tar.gz "$ART/nova-openapi.json"
  t2=$(date +%s)
  nova_rc=0
  "$ROOT/.tools/schemathesis/bin/st" run "$ART/nova-openapi.json" --url "$URL/compute/v2.1" \
    -H "X-Auth-Token: $token" -H "OpenStack-API-Version: compute 2.60" --checks not_a_server_error \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-10}" --seed "$seed" --report junit \
    --report-junit-path "$ART/schemathesis-nova-junit.xml" >"$ART/schemathesis-nova.log" 2>&1 || nova_rc=$?
  [[ $nova_rc -eq 0 ]] || cat "$ART/schemathesis-nova.log"
  cases=$(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$ART/schemathesis-nova.log" | tail -1 || true)
  echo "schemathesis (Nova's schemas): ${cases:-no cases counted}, seed $seed, exit $nova_rc ($(( $(date +%s) - t2 )) s); report in test-artifacts/schemathesis-nova.log"
  [[ $nova_rc -eq 0 ]] || st_rc=$nova_rc
fi
[[ $rc -eq 0 && $totals_ok -eq 0 ]] || { echo "tempest: failures (exit $rc); details in test-artifacts/tempest.log" >&2; exit 1; }
[[ $st_rc -eq 0 ]] || { echo "schemathesis: failures" >&2; exit 1; }
