-- PATCH /items/{id} {"price": ...} with a random seeded id: wrk <url> -s patch.lua -- <first> <last>
local first, last

function init(args)
  first, last = tonumber(args[1]), tonumber(args[2])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local body = string.format('{"price": %d.%02d}', math.random(0, 9999), math.random(0, 99))
  local headers = {["Content-Type"] = "application/json"}
  return wrk.format("PATCH", "/items/" .. math.random(first, last), headers, body)
end
