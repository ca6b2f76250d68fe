// Package migrations embeds the service's versioned SQL migrations.
package migrations

import "embed"

// FS holds the goose migrations, applied in order at start-up.
//
//go:embed *.sql
var FS embed.FS
