-- wrk -s get.lua URL -- KEY IDS_FILE: GET /v1/predictions/{id}, cycling through the ids.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local reqs = {}
local i = 0

function init(args)
  local headers = {["Authorization"] = "Bearer " .. args[1]}
  for id in io.lines(args[2]) do
    reqs[#reqs + 1] = wrk.format("GET", "/v1/predictions/" .. id, headers)
  end
  i = math.random(#reqs)
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
