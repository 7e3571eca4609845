-- wrk -s post.lua URL -- KEY BODY_FILE: POST the body to /v1/predictions on every request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local req

function init(args)
  local file = assert(io.open(args[2], "rb"))
  local body = file:read("*a")
  file:close()
  req = wrk.format("POST", "/v1/predictions",
    {["Authorization"] = "Bearer " .. args[1], ["Content-Type"] = "application/json"}, body)
end

function request()
  return req
end
