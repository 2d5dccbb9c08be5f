wrk.method = "POST"
wrk.body = "{\"key\": \"dev-17\", \"value\": 21.5}"
wrk.headers["Content-Type"] = "application/json"
