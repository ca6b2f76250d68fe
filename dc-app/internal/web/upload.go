package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strings"

	"github.com/labstack/echo/v4"

	"spacesync.io/dc-app/internal/importer"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/token"
)

const ctxLimiter = "dcapp.limiter"

func errTooLarge() *apperr.Error {
	return apperr.Newf(apperr.PayloadTooLarge,
		"This upload is larger than %d KiB, far larger than a space token. Choose the .token file you were sent.", token.MaxUploadSize>>10)
}

// limitedBody fails reads past n bytes and remembers that it did, so that
// whoever parses the body (a form parser, the multipart reader, a JSON
// decoder) and however it wraps the error, the answer is a 413.
type limitedBody struct {
	rc       io.ReadCloser
	left     int64
	exceeded bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, errTooLarge()
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) > l.left {
		l.exceeded = true
		return int(l.left), errTooLarge()
	}
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// bodyLimit caps the request body at n bytes, before anything else looks
// at the request: a declared length over n is refused at once, and a body
// without a declared length (chunked) is read ahead, up to n bytes, so
// that an oversized one is a 413 here rather than whatever a later check
// (authentication, CSRF) would have said. A declared length is enforced by
// net/http, and the limiter below is the second guard.
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				return errTooLarge()
			}
			lb := &limitedBody{rc: r.Body, left: n}
			if r.ContentLength < 0 {
				b, err := io.ReadAll(lb)
				if lb.exceeded {
					return errTooLarge()
				}
				if err != nil {
					return apperr.Wrap(err, apperr.ValidationFailed, "The request body could not be read.")
				}
				r.Body.Close()
				lb = &limitedBody{rc: io.NopCloser(bytes.NewReader(b)), left: n}
				r.ContentLength = int64(len(b))
			}
			r.Body = lb
			c.Set(ctxLimiter, lb)
			return next(c)
		}
	}
}

// bodyError maps an error met while reading the body: over the limit is a
// 413, anything else a validation error.
func bodyError(c echo.Context, err error) error {
	if lb, ok := c.Get(ctxLimiter).(*limitedBody); ok && lb.exceeded {
		return errTooLarge()
	}
	var ae *apperr.Error
	if errors.As(err, &ae) && ae.Code == apperr.PayloadTooLarge {
		return ae
	}
	return apperr.Wrap(err, apperr.ValidationFailed, "The request could not be read. Send the token file as multipart/form-data (field \"file\"), or the token text.")
}

// importInput is what an import or preview request carries.
type importInput struct {
	Token       []byte
	Name        string
	Permissions []store.Principal
	Expect      *protocol.Expect
}

// jsonImport is the JSON form of an import: {"token", "name",
// "permissions": [{"type", "name"}], "expect": {...}}.
type jsonImport struct {
	Token       string `json:"token"`
	Name        string `json:"name"`
	Permissions []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"permissions"`
	Expect *protocol.Expect `json:"expect"`
}

// readInput reads an upload in any of its forms: multipart/form-data with
// a "file" part (any file name, any declared type: content decides) or a
// "token" field; JSON {"token", ...}; or, when raw is allowed, the body
// itself as the token text whatever its declared type.
func readInput(c echo.Context, raw bool) (importInput, error) {
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	switch {
	case mt == "multipart/form-data":
		return readMultipart(c)
	case mt == "application/json" && !raw:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return importInput{}, bodyError(c, err)
		}
		var j jsonImport
		if err := json.Unmarshal(body, &j); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return importInput{}, apperr.Wrap(err, apperr.ValidationFailed, "The field \""+te.Field+"\" has the wrong type. Send {\"token\": \"...\", \"name\": \"...\", \"permissions\": [{\"type\": \"user\", \"name\": \"...\"}]}.")
			}
			return importInput{}, apperr.Wrap(err, apperr.ValidationFailed, "The request is not valid JSON. Send {\"token\": \"...\", \"name\": \"...\"}.")
		}
		return j.input(), nil
	case raw:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return importInput{}, bodyError(c, err)
		}
		// A JSON {"token": "..."} is accepted too; anything else is the
		// token text itself, and the token reader judges it.
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
			var j jsonImport
			if json.Unmarshal(t, &j) == nil && j.Token != "" {
				return j.input(), nil
			}
		}
		return importInput{Token: body}, nil
	}
	return importInput{}, apperr.New(apperr.ValidationFailed,
		"Send the token file and name as multipart/form-data (fields \"file\" and \"name\"), or JSON {\"token\": \"...\", \"name\": \"...\"}.")
}

func (j jsonImport) input() importInput {
	in := importInput{Token: []byte(j.Token), Name: j.Name, Expect: j.Expect}
	for _, p := range j.Permissions {
		in.Permissions = append(in.Permissions, store.Principal{Type: p.Type, Name: p.Name})
	}
	return in
}

// maxMultipartMemory keeps every part in memory: the body limit is far
// below it.
const maxMultipartMemory = 1 << 20

func readMultipart(c echo.Context) (importInput, error) {
	r := c.Request()
	if err := r.ParseMultipartForm(maxMultipartMemory); err != nil {
		return importInput{}, bodyError(c, err)
	}
	defer r.MultipartForm.RemoveAll()
	f := r.MultipartForm
	var in importInput
	switch files := f.File["file"]; {
	case len(files) > 1:
		return in, apperr.Validation(map[string]string{"file": "Upload one token file at a time."})
	case len(files) == 1:
		fh, err := files[0].Open()
		if err != nil {
			return in, bodyError(c, err)
		}
		defer fh.Close()
		// One byte over the cap is enough for the token reader to refuse.
		b, err := io.ReadAll(io.LimitReader(fh, token.MaxUploadSize+1))
		if err != nil {
			return in, bodyError(c, err)
		}
		in.Token = b
	case len(f.Value["file"]) == 1:
		// A file part with an empty file name arrives as a plain field.
		in.Token = []byte(f.Value["file"][0])
	case len(f.Value["token"]) == 1:
		in.Token = []byte(f.Value["token"][0])
	default:
		return in, apperr.Validation(map[string]string{"file": "Choose the token file (field \"file\"), or send the token text (field \"token\")."})
	}
	in.Name = first(f.Value["name"])
	in.Permissions = importer.ParsePermissions(strings.Join(f.Value["permissions"], "\n"))
	site, space, sync := first(f.Value["expectSiteBaseUrl"]), first(f.Value["expectSpaceId"]), first(f.Value["expectSyncId"])
	if site != "" || space != "" || sync != "" {
		in.Expect = &protocol.Expect{SiteBaseURL: site, SpaceID: space, SyncID: sync}
	}
	return in, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// noStore marks a response that carries token details as not cacheable
// (securityHeaders already does; this keeps it explicit where it matters).
func noStore(c echo.Context) {
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
}
