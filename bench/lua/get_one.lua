-- GET /items/{id} with a random id among the seeded ones: wrk <url> -s get_one.lua -- <first> <last>
local first, last

function init(args)
  first, last = tonumber(args[1]), tonumber(args[2])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  return wrk.format("GET", "/items/" .. math.random(first, last))
end
