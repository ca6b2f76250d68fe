package load

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Statement is one normalised statement from pg_stat_statements.
type Statement struct {
	Query string
	Calls int64
	// Total and Mean are execution time in the server (no network).
	Total, Mean time.Duration
	Rows        int64
}

// topStatements reads the n statements of database dbname that took the
// most execution time since the last reset.
func (e *Env) topStatements(ctx context.Context, dbname string, n int) ([]Statement, error) {
	db, err := sql.Open("pgx", e.PG.URL("postgres"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT query, calls, total_exec_time, mean_exec_time, rows
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
			AND query !~* '^\s*(copy|analyze)\M' -- the seeding's, not the service's
		ORDER BY total_exec_time DESC LIMIT $2`, dbname, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var s Statement
		var total, mean float64
		if err := rows.Scan(&s.Query, &s.Calls, &total, &mean, &s.Rows); err != nil {
			return nil, err
		}
		s.Total = time.Duration(total * float64(time.Millisecond))
		s.Mean = time.Duration(mean * float64(time.Millisecond))
		s.Query = strings.Join(strings.Fields(s.Query), " ")
		out = append(out, s)
	}
	return out, rows.Err()
}
