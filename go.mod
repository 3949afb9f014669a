module github.com/ams-dev/ams

go 1.26.8

require (
	github.com/coder/websocket v1.8.15
	github.com/oklog/ulid/v2 v2.1.2
	github.com/syumai/workers v0.30.2
	github.com/tidwall/gjson v1.20.1
)

require (
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
)
