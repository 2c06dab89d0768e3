module github.com/resomap/resomap

go 1.26.8

require (
	github.com/ebitengine/purego v0.11.3 // indirect
	golang.org/x/image v0.48.0 // indirect
)
