module spacesync.io/devstack

go 1.27.3

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.24.0
	github.com/glebarez/go-sqlite v1.23.0
	github.com/google/go-cmp v0.7.0
	github.com/jackc/pgx/v5 v5.13.0
	github.com/sendgrid/rest v2.6.9+incompatible
	github.com/sendgrid/sendgrid-go v3.16.1+incompatible
	gopkg.in/yaml.v3 v3.0.1
	spacesync.io/shared v0.0.0
)

require github.com/stretchr/testify v1.12.1 // indirect

replace spacesync.io/shared => ../shared
