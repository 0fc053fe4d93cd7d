-- wrk script for the real-server benchmark, benchmarks/servers/ (wrk: https://github.com/wg/wrk, Lua API in its
-- SCRIPTING file).
--
-- * CROSSGATE_WRK_BODY_BYTES=n in the environment makes every request a POST with an
--   n-byte body (the upload workload); wrk adds the Content-Length itself.
-- * done() prints one line, "CROSSGATE_WRK {json}", so the caller reads the figures
--   without parsing wrk's human-readable report. errors.status counts responses with a
--   status of 400 or more (wrk's "Non-2xx or 3xx responses").

local body_bytes = tonumber(os.getenv("CROSSGATE_WRK_BODY_BYTES") or "0") or 0
if body_bytes > 0 then
   wrk.method = "POST"
   wrk.body = string.rep("u", body_bytes)
   wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'CROSSGATE_WRK {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "p50": %.1f, "p90": %.1f, "p99": %.1f, "max": %.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
