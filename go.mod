module github.com/switchboard-go/switchboard

go 1.26.8
