-- GET <path><id> with a random id among the seeded ones:
-- wrk <url> -s get_one.lua -- <first> <last> [path, /items/ by default]
local first, last, path

function init(args)
  first, last, path = tonumber(args[1]), tonumber(args[2]), args[3] or "/items/"
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  return wrk.format("GET", path .. math.random(first, last))
end
