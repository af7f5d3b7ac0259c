package metering

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
	"github.com/creditgate/creditgate/money"
)

// Batches (/v1/batches) run many requests of one endpoint and one model from an
// input file, one JSON line each ({"custom_id","method":"POST","url","body"}),
// and write one line per answer to an output file ({"custom_id","response":
// {"status_code","body"},"error"}). EstimateBatch reads an input file as the
// proxy reads each request it admits (ParseRequest, InputTokens, Estimate) and
// sums the worst cases; BatchUsage sums the usage of an output file's answers,
// each read as its endpoint's response body is; DiscountedCost prices a batch
// at the share of the list price batches are billed at.

// BatchLimits bound what EstimateBatch reads.
type BatchLimits struct {
	// MaxBytes bounds the whole file (OpenAI's own limit is 200 MB).
	MaxBytes int64
	// MaxLine bounds one line (one request's body and its envelope).
	MaxLine int
	// MaxRequests bounds the lines (OpenAI's own limit is 50,000).
	MaxRequests int
}

// BatchEstimate is what a batch may cost at most, at list price.
type BatchEstimate struct {
	Model    string // the priced model every line is billed as
	Price    Price
	Requests int
	// Estimate is Σ each line's worst case (Request.Estimate), saturating at
	// money.MaxAmount.
	Estimate money.Micros
}

// BatchInputError is what is wrong with an input file, at which line (1-based;
// 0: the file as a whole).
type BatchInputError struct {
	Line    int
	Message string
}

func (e *BatchInputError) Error() string {
	if e.Line == 0 {
		return "The batch input file " + e.Message
	}
	return fmt.Sprintf("Line %d of the batch input file: %s", e.Line, e.Message)
}

// EstimateBatch reads an input file of requests to ep and returns its worst case
// at list price. Every line must be a POST to ep's path with a body the proxy
// would admit (ParseRequest), not streamed, for a priced model — one model for
// the whole file, as OpenAI requires — under a unique custom_id; blank lines are
// skipped. Errors are *BatchInputError, but for a read error of r. Work and
// memory are linear in one line, the file is never held whole.
func EstimateBatch(r io.Reader, ep Endpoint, pricing *Pricing, lim BatchLimits) (BatchEstimate, error) {
	spec := specOf(ep)
	if spec == nil || !Batchable(ep) { // images and speech are not batched here
		return BatchEstimate{}, &BatchInputError{Message: fmt.Sprintf("targets %q, which creditgate does not meter", ep)}
	}
	var out BatchEstimate
	var tok Tokenizer
	seen := map[string]bool{}
	lines := newLineReader(r, lim.MaxBytes, lim.MaxLine)
	for {
		n, line, err := lines.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return BatchEstimate{}, err
		}
		if out.Requests == lim.MaxRequests {
			return BatchEstimate{}, &BatchInputError{Message: fmt.Sprintf("has more than %d requests.", lim.MaxRequests)}
		}
		body, customID, lerr := batchLine(line, spec.path)
		if lerr != nil {
			return BatchEstimate{}, &BatchInputError{Line: n, Message: lerr.Error()}
		}
		if seen[customID] {
			return BatchEstimate{}, &BatchInputError{Line: n, Message: fmt.Sprintf("custom_id %q is used twice; each request needs its own.", customID)}
		}
		seen[customID] = true
		req, err := ParseRequest(ep, body)
		if err != nil {
			return BatchEstimate{}, &BatchInputError{Line: n, Message: "body: " + err.Error()}
		}
		if req.Stream {
			return BatchEstimate{}, &BatchInputError{Line: n, Message: "body: a batch request cannot stream ('stream' must be false)."}
		}
		name, price, ok := pricing.Resolve(req.Model)
		switch {
		case !ok:
			return BatchEstimate{}, &BatchInputError{Line: n, Message: "body: the model `" + req.Model + "` does not exist or is not available through this gateway (it has no price)."}
		case out.Model == "":
			out.Model, out.Price = name, price
			encoding := price.Encoding
			if encoding == "" {
				encoding = EncodingForModel(req.Model)
			}
			if tok, err = TokenizerFor(encoding); err != nil {
				return BatchEstimate{}, err
			}
		case name != out.Model:
			return BatchEstimate{}, &BatchInputError{Line: n, Message: fmt.Sprintf("body: model %q is billed as %q, but the batch's first request is %q: a batch runs one model.", req.Model, name, out.Model)}
		}
		out.Estimate = min(out.Estimate+req.Estimate(price, req.InputTokens(tok)), money.MaxAmount)
		out.Requests++
	}
	if out.Requests == 0 {
		return BatchEstimate{}, &BatchInputError{Message: "has no requests."}
	}
	return out, nil
}

// batchLine reads one input line: its body and custom_id, checking the envelope.
func batchLine(line []byte, path string) (body []byte, customID string, err error) {
	if !jsonObjectAt(line) {
		return nil, "", errors.New("not a JSON object.")
	}
	var method, url string
	var haveBody, haveID bool
	it := jsonscan.Members(line, jsonscan.SkipSpace(line, 0))
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		switch {
		case m.Is("custom_id"):
			s, ok := jsonscan.TextAt(line, m.Start, m.End)
			if !ok || s == "" || haveID {
				return nil, "", errors.New("'custom_id' must be one non-empty string.")
			}
			customID, haveID = strings.Clone(s), true
		case m.Is("method"):
			method, _ = jsonscan.TextAt(line, m.Start, m.End)
		case m.Is("url"):
			url, _ = jsonscan.TextAt(line, m.Start, m.End)
		case m.Is("body"):
			if line[m.Start] != '{' || haveBody {
				return nil, "", errors.New("'body' must be one JSON object.")
			}
			body, haveBody = line[m.Start:m.End], true
		}
	}
	switch {
	case !haveID:
		return nil, "", errors.New("'custom_id' is missing.")
	case method != "POST":
		return nil, "", fmt.Errorf("'method' must be \"POST\", got %q.", method)
	case strings.TrimSuffix(url, "/") != path:
		return nil, "", fmt.Errorf("'url' must be the batch's endpoint %q, got %q.", path, url)
	case !haveBody:
		return nil, "", errors.New("'body' is missing.")
	}
	return body, customID, nil
}

// jsonObjectAt reports whether b is one valid JSON object (nested at most
// maxDepth, the request parser's own bound).
func jsonObjectAt(b []byte) bool {
	if jsonscan.Check(b, maxDepth) != nil {
		return false
	}
	return b[jsonscan.SkipSpace(b, 0)] == '{'
}

// BatchResult is what a batch's output file says was used.
type BatchResult struct {
	Tokens Tokens // the sum of every answered request's usage
	// Answered is how many lines carried a 2xx answer with usage; Unmetered the
	// 2xx answers without a usage object (not billed: nothing says what they
	// used); Failed the lines with an error status or an error.
	Answered, Unmetered, Failed int
}

// BatchUsage sums the usage of a batch output file of answers to ep. A line
// that is not a JSON object is an error (the file is the upstream's, not the
// app's: a broken one is not billed by guess); a 2xx answer's body is read as
// ep's response body is (ResponseMeter.Body), its usage authoritative. Memory
// is linear in one line, within maxLine, and the file within maxBytes.
func BatchUsage(r io.Reader, ep Endpoint, maxBytes int64, maxLine int) (BatchResult, error) {
	spec := specOf(ep)
	if spec == nil {
		return BatchResult{}, fmt.Errorf("metering: batch output of unknown endpoint %q", ep)
	}
	var out BatchResult
	lines := newLineReader(r, maxBytes, maxLine)
	for {
		n, line, err := lines.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		status, body, ok := outputLine(line)
		if !ok {
			return out, fmt.Errorf("metering: line %d of the batch output is not an answer", n)
		}
		if status < 200 || status > 299 || body == nil {
			out.Failed++
			continue
		}
		m := &ResponseMeter{spec: spec}
		m.Body(body)
		if !m.hasUsage {
			out.Unmetered++
			continue
		}
		out.Tokens = out.Tokens.Add(m.usage)
		out.Answered++
	}
}

// outputLine reads an output line's response status and body (nil when the line
// carries an error instead).
func outputLine(line []byte) (status int64, body []byte, ok bool) {
	if !jsonObjectAt(line) {
		return 0, nil, false
	}
	it := jsonscan.Members(line, jsonscan.SkipSpace(line, 0))
	for m, found := it.Next(); found; m, found = it.Next() {
		if !m.Is("response") || line[m.Start] != '{' {
			continue
		}
		rit := jsonscan.Members(line, m.Start)
		for f, found := rit.Next(); found; f, found = rit.Next() {
			switch {
			case f.Is("status_code"):
				status, _ = jsonscan.IntAt(line, f.Start, f.End)
			case f.Is("body") && line[f.Start] == '{':
				body = line[f.Start:f.End]
			}
		}
	}
	return status, body, true
}

// lineReader yields the non-blank lines of a JSONL file, bounded.
type lineReader struct {
	r        *bufio.Reader
	maxBytes int64
	maxLine  int
	read     int64
	n        int
}

func newLineReader(r io.Reader, maxBytes int64, maxLine int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), maxBytes: maxBytes, maxLine: maxLine}
}

// next returns the next non-blank line (without its end) and its number, or
// io.EOF.
func (l *lineReader) next() (int, []byte, error) {
	for {
		var line []byte
		for {
			chunk, err := l.r.ReadSlice('\n')
			l.read += int64(len(chunk))
			if l.maxBytes > 0 && l.read > l.maxBytes {
				return 0, nil, &BatchInputError{Message: fmt.Sprintf("is larger than %d bytes.", l.maxBytes)}
			}
			if len(line)+len(chunk) > l.maxLine+2 { // +2: the line's end, \r\n
				return 0, nil, &BatchInputError{Line: l.n + 1, Message: fmt.Sprintf("longer than %d bytes.", l.maxLine)}
			}
			line = append(line, chunk...)
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, nil, err
			}
			if len(line) == 0 && errors.Is(err, io.EOF) {
				return 0, nil, io.EOF
			}
			break
		}
		l.n++
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return l.n, line, nil
		}
	}
}

// DiscountedCost prices t at share millionths of p (500000: half price):
// ceil(Σ tokens_c × price_c × share / 10^12) micro-USD, rounded once for the
// whole batch, saturating at money.MaxAmount. Token classes are clipped as
// Price.Cost clips them.
func DiscountedCost(p Price, t Tokens, share int64) money.Micros {
	in, out := nonNeg(t.Input), nonNeg(t.Output)
	cached := min(nonNeg(t.CachedInput), in)
	audioIn := min(nonNeg(t.AudioInput), in-cached)
	reasoning := min(nonNeg(t.Reasoning), out)
	audioOut := min(nonNeg(t.AudioOutput), out-reasoning)
	sum := new(big.Int)
	for _, c := range [...]struct {
		n     int64
		price money.Micros
	}{
		{in - cached - audioIn, p.Input}, {cached, p.CachedInput}, {audioIn, p.AudioInput},
		{out - reasoning - audioOut, p.Output}, {reasoning, p.Reasoning}, {audioOut, p.AudioOutput},
	} {
		if c.n > 0 && c.price > 0 {
			sum.Add(sum, new(big.Int).Mul(big.NewInt(c.n), big.NewInt(int64(c.price))))
		}
	}
	return shareOf(sum, share, 1_000_000_000_000)
}

// DiscountedAmount is ceil(m × share / 10^6): an amount at share millionths.
func DiscountedAmount(m money.Micros, share int64) money.Micros {
	return shareOf(big.NewInt(int64(max(m, 0))), share, 1_000_000)
}

// DiscountedPrice is p at share millionths, each class rounded up to a whole
// micro-USD per 1M tokens: the unit prices a batch's usage event records.
func DiscountedPrice(p Price, share int64) Price {
	d := func(m money.Micros) money.Micros { return DiscountedAmount(m, share) }
	p.Input, p.CachedInput, p.AudioInput = d(p.Input), d(p.CachedInput), d(p.AudioInput)
	p.Output, p.Reasoning, p.AudioOutput = d(p.Output), d(p.Reasoning), d(p.AudioOutput)
	return p
}

// shareOf is ceil(x × share / div), saturating at money.MaxAmount.
func shareOf(x *big.Int, share, div int64) money.Micros {
	if share <= 0 || x.Sign() <= 0 {
		return 0
	}
	x = new(big.Int).Mul(x, big.NewInt(share))
	q, r := new(big.Int).QuoRem(x, big.NewInt(div), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() || q.Int64() > int64(money.MaxAmount) {
		return money.MaxAmount
	}
	return money.Micros(q.Int64())
}
