module github.com/recsink/recsink

go 1.26.8
