package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/syncproto"
)

// The device's side of HTTP: compressing requests, retrying, reading and
// decompressing answers. The sync loop (sync.go) sees only decoded answers.

// maxAnswer bounds what the device reads of one answer.
const maxAnswer = 256 << 20

// wireBody is an exchange request as it goes out: its bytes and their
// form.
type wireBody struct {
	data    []byte
	columns bool // the column form (syncproto.MediaTypeColumns), else JSON
}

func (b wireBody) contentType() string {
	if b.columns {
		return syncproto.MediaTypeColumns
	}
	return jsonType
}

const jsonType = "application/json"

// exchange posts one exchange request, gzip-compressed, retrying with
// exponential backoff and jitter on network errors and 5xx answers. It
// returns the bytes sent and received on the wire. notify, when set, is
// told of each retry: which error, and how long until the next try.
func (r *Replica) exchange(ctx context.Context, url, token string, body wireBody, into *syncproto.SyncResponse, notify func(err error, wait time.Duration)) (up, down int64, err error) {
	var buf bytes.Buffer
	zw := getGzipWriter()
	zw.Reset(&buf)
	_, err = zw.Write(body.data)
	if err == nil {
		err = zw.Close()
	}
	putGzipWriter(zw)
	if err != nil {
		return 0, 0, fmt.Errorf("sync: compress: %w", err)
	}
	payload := buf.Bytes()
	op := func() error {
		n, err := r.send(ctx, url, token, payload, body.contentType(), true, into)
		up += int64(len(payload))
		down += n
		return err
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 500 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = r.opts.RetryFor
	err = backoff.RetryNotify(op, backoff.WithContext(bo, ctx), func(err error, wait time.Duration) {
		if notify != nil {
			notify(err, wait)
		}
	})
	return up, down, err
}

// notifyProgress tells Options.Progress of a retry; only the goroutine
// running Sync may call it (it reads the report Sync writes).
func (r *Replica) notifyProgress(err error, wait time.Duration) {
	if r.progress != nil {
		r.progress(err, wait)
	}
}

// gzipWriters keeps request compressors for the next exchanges: each
// holds most of a megabyte of tables, which a pull of a hundred pages
// would otherwise allocate a hundred times for requests of a few
// hundred bytes.
// A channel rather than a sync.Pool, which every garbage collection
// empties: a long pull collects more often than it sends.
var gzipWriters = make(chan *gzip.Writer, 2)

func getGzipWriter() *gzip.Writer {
	select {
	case zw := <-gzipWriters:
		return zw
	default:
		return gzip.NewWriter(nil)
	}
}

func putGzipWriter(zw *gzip.Writer) {
	select {
	case gzipWriters <- zw:
	default:
	}
}

// post sends an uncompressed request once (logins are small and must not
// be retried blindly).
func (r *Replica) post(ctx context.Context, url, token string, body []byte, into any) error {
	_, err := r.send(ctx, url, token, body, jsonType, false, into)
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		return perm.Err
	}
	return err
}

// send makes one HTTP request. Errors worth retrying are returned plain;
// others are wrapped as permanent so the backoff stops.
func (r *Replica) send(ctx context.Context, url, token string, payload []byte, ctype string, gz bool, into any) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, backoff.Permanent(fmt.Errorf("sync: %w", err))
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept-Encoding", "gzip")
	if _, ok := into.(*syncproto.SyncResponse); ok {
		// The column form of an answer is a third smaller on the wire
		// and cheaper to decode than JSON; JSON stays acceptable, for a
		// server that does not speak it yet.
		req.Header.Set("Accept", syncproto.MediaTypeColumns+", application/json")
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, backoff.Permanent(ctx.Err())
		}
		return 0, fmt.Errorf("sync: server unreachable: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	n := int64(len(raw))
	if err != nil {
		return n, fmt.Errorf("sync: answer cut: %w", err)
	}
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return n, fmt.Errorf("sync: answer is not valid gzip: %w", err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxAnswer))
		if err != nil {
			return n, fmt.Errorf("sync: answer is not valid gzip: %w", err)
		}
	}
	if res.StatusCode >= 500 {
		return n, syncproto.DecodeError(res.StatusCode, raw)
	}
	if res.StatusCode != http.StatusOK {
		return n, backoff.Permanent(syncproto.DecodeError(res.StatusCode, raw))
	}
	if resp, ok := into.(*syncproto.SyncResponse); ok {
		// The server lists on each answer the request forms it reads:
		// the next request goes in the column form only if this one
		// says so (a server may have been replaced by an older one).
		r.pushColumns.Store(syncproto.AcceptsColumns(res.Header.Get(syncproto.HeaderAcceptPost)))
		decode := syncproto.DecodeResponse
		if syncproto.IsColumns(res.Header.Get("Content-Type")) {
			decode = syncproto.DecodeResponseColumns
		}
		dec, err := decode(raw)
		if err != nil {
			return n, fmt.Errorf("sync: %w", err)
		}
		*resp = *dec
		return n, nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return n, fmt.Errorf("sync: unreadable answer: %w", err)
	}
	return n, nil
}
