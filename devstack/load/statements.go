package load

import (
	"context"
	"database/sql"
	"sort"
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

// stmtCounters are pg_stat_statements' counters at one instant, by
// statement (queryid and whether it was top level).
type stmtCounters map[string]Statement

// statementCounters reads every statement of database dbname.
func (e *Env) statementCounters(ctx context.Context, dbname string) (stmtCounters, error) {
	db, err := sql.Open("pgx", e.PG.URL("postgres"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT queryid::text || '/' || toplevel::text, query, calls, total_exec_time, rows
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)`, dbname)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := stmtCounters{}
	for rows.Next() {
		var key string
		var s Statement
		var total float64
		if err := rows.Scan(&key, &s.Query, &s.Calls, &total, &s.Rows); err != nil {
			return nil, err
		}
		s.Total = time.Duration(total * float64(time.Millisecond))
		s.Query = strings.Join(strings.Fields(s.Query), " ")
		out[key] = s
	}
	return out, rows.Err()
}

// StatementsBetween is what each statement did between two readings, the
// n with the most execution time first. Statements the window did not run
// are left out, so the seeding before a window (and its foreign-key
// checks) does not show.
func StatementsBetween(before, after stmtCounters, n int) []Statement {
	var out []Statement
	for k, a := range after {
		b := before[k]
		d := Statement{Query: a.Query, Calls: a.Calls - b.Calls, Total: a.Total - b.Total, Rows: a.Rows - b.Rows}
		if d.Calls <= 0 {
			continue
		}
		d.Mean = d.Total / time.Duration(d.Calls)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Query < out[j].Query
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
