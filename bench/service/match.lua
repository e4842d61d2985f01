-- wrk script of bench/bench_service.py: POST the JSON bodies of a file (one per
-- line, given after "--") to the URL in turn, and print a JSON summary.
--
--   wrk -t1 -c16 -d30s -s bench/service/match.lua -H "Authorization: Bearer tbk_..." \
--       -H "Content-Type: application/json" http://127.0.0.1:8080/v1/banks/default/match \
--       -- bodies.jsonl
wrk.method = "POST"

local bodies, count, position = {}, 0, 0

function init(args)
   for line in io.lines(args[1]) do
      count = count + 1
      bodies[count] = line
   end
   if count == 0 then
      error("no request bodies in " .. tostring(args[1]))
   end
   position = math.random(count)
end

function request()
   position = position % count + 1
   return wrk.format(nil, nil, nil, bodies[position])
end

dofile(os.getenv("TAKEBACK_WRK_SUMMARY") or "bench/service/summary.lua")
