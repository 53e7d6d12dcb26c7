/**
 * How the project runs `temporal server start-dev` (the launcher, and the fault suite as `make start`
 * does): beyond ports and files, one tuning. An idle worker's long poll ends after
 * `matching.longPollExpirationInterval` and it polls again; the server keeps recording a frozen
 * (SIGSTOPped) worker's last poll until then. At 10 s instead of the default minute, a frozen or dead
 * worker stops showing fresh polls within 10 s, so host liveness (HOST_DOWN_AFTER_SECONDS after the last
 * poll) sees it down within HOST_DOWN_AFTER_SECONDS + 10 s, and a live idle worker never looks stale.
 */
export const DEV_SERVER_LONG_POLL_SECONDS = 10;

export const DEV_SERVER_TUNING_ARGS: readonly string[] = [
  '--dynamic-config-value',
  `matching.longPollExpirationInterval="${DEV_SERVER_LONG_POLL_SECONDS}s"`,
];
