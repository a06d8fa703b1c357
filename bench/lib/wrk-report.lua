-- Loaded by lib/wrk.mjs with `wrk -s`: prints the exact number of bytes read at the end of the run
-- (wrk's own report rounds it, "2.32GB read"). Only `done` is defined, so requests stay static and
-- responses are not handed to Lua: no per-request cost.
done = function(summary, latency, requests)
  io.write(string.format("Bytes read: %d\n", summary.bytes))
end
