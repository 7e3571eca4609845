-- Shared by the wrk scripts: print the run as one JSON line when wrk is done.
local percentiles = {10, 25, 50, 75, 90, 95, 99, 99.9}

function done(summary, latency, requests)
  local parts = {}
  for _, p in ipairs(percentiles) do
    parts[#parts + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "max_us": %d, "percentiles_us": {%s}}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency.max, table.concat(parts, ", ")))
end
