-- PATCH /items/{id} {"name": ...} with a random seeded id: wrk <url> -s rename.lua -- <first> <last>
local first, last

function init(args)
  first, last = tonumber(args[1]), tonumber(args[2])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local body = string.format('{"name": "Renamed Widget %d"}', math.random(0, 999999))
  local headers = {["Content-Type"] = "application/json"}
  return wrk.format("PATCH", "/items/" .. math.random(first, last), headers, body)
end
