module spacesync.io/devstack

go 1.27.3

require spacesync.io/shared v0.0.0

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/sendgrid/rest v2.6.9+incompatible // indirect
	github.com/sendgrid/sendgrid-go v3.16.1+incompatible // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace spacesync.io/shared => ../shared
