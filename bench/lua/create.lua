-- POST /items/ with a JSON body; no sku, so no two requests conflict.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "Blue Bench Widget", "description": "Created under load", "price": 19.99}'
