-- wrk script of bench/bench_service.py: POST image files (their paths listed one
-- per line in the file given after "--") as raw bodies, in turn, and print a
-- JSON summary. Send "Content-Type: image/jpeg" with -H.
wrk.method = "POST"

local images, count, position = {}, 0, 0

function init(args)
   for path in io.lines(args[1]) do
      local fh = assert(io.open(path, "rb"))
      count = count + 1
      images[count] = fh:read("*a")
      fh:close()
   end
   if count == 0 then
      error("no images listed in " .. tostring(args[1]))
   end
   position = math.random(count)
end

function request()
   position = position % count + 1
   return wrk.format(nil, nil, nil, images[position])
end

dofile(os.getenv("TAKEBACK_WRK_SUMMARY") or "bench/service/summary.lua")
