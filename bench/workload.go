package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/creditgate/creditgate/metering"
)

// benchModel is the model every request asks for: priced in the default table,
// counted with o200k_base.
const benchModel = "gpt-4o-mini"

// A nonce makes every message of every request a text creditgate has never counted,
// so its count cache cannot hide the tokenizer's cost. It is "[ref NNNNNN]" at the
// start of each message. Six digits pre-tokenize as two 3-digit pieces whatever they
// are, and every 3-digit string is one token in o200k_base and cl100k_base
// (TestNonceDoesNotChangeCounts), so the count does not depend on the digits. The mock
// upstream's role resets them to zeros before the mock reads the body
// (canonicalizeNonces): its own count cache then sees a few texts again and again, and
// its tiktoken-go counting stays off the critical path, while the usage it reports is
// still exact.
const (
	noncePrefix = "[ref "
	nonceDigits = 6
	nonceSpace  = 1_000_000
)

// workload is one prompt size: a few chat request templates of about the same number
// of prompt tokens, each with the offsets of its nonces.
type workload struct {
	name      string // "100", "1k", "8k"
	target    int    // the wanted prompt size in tokens
	templates []template
	tokens    int // the exact prompt tokens (metering's chat formula) of the first template
	bodyBytes int // the first template's size
}

type template struct {
	body   []byte
	nonces []int // offsets of the nonce digits in body
}

// words are common English words: the prompts read like prose, which is what the
// tokenizer's throughput figures are usually quoted for.
var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all would their has more if will when
can who so no time about people into only other could new some two these may first then do any like my
now over such our man me even most made after also did many before must through back years where much
your way well down should because each just those how too little state good very make world still own
see men work long get here between both life being under never day same another know while last might
us great old year off come since against go came right used take three proxy tokens balance account
credit request stream billing model prompt answer counts metering ledger redis settle reserve grace`)

// newWorkload builds variants templates of about target prompt tokens each. A
// template alternates user and assistant messages of at most ~3,000 bytes after a
// system message, the shape of a conversation resent turn after turn. stream adds
// "stream": true.
func newWorkload(name string, target, variants int, stream bool, tok metering.Tokenizer) (*workload, error) {
	w := &workload{name: name, target: target}
	for v := range variants {
		rng := rand.New(rand.NewPCG(uint64(target), uint64(v)))
		body, err := chatBody(rng, target, stream, tok)
		if err != nil {
			return nil, err
		}
		t := template{body: body}
		for i := 0; ; {
			j := bytes.Index(body[i:], []byte(noncePrefix))
			if j < 0 {
				break
			}
			t.nonces = append(t.nonces, i+j+len(noncePrefix))
			i += j + len(noncePrefix) + nonceDigits
		}
		w.templates = append(w.templates, t)
	}
	req, err := metering.ParseRequest(metering.ChatCompletions, w.templates[0].body)
	if err != nil {
		return nil, fmt.Errorf("bench: workload %s does not parse: %w", name, err)
	}
	w.tokens = int(req.InputTokens(tok).Input)
	w.bodyBytes = len(w.templates[0].body)
	return w, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatBody writes a chat request of about target prompt tokens.
func chatBody(rng *rand.Rand, target int, stream bool, tok metering.Tokenizer) ([]byte, error) {
	const maxMessageBytes = 3000
	system := chatMessage{Role: "system", Content: nonceText() + "You are a concise assistant for a billing team. " + sentence(rng)}
	msgs := []chatMessage{system}
	// Chat formula: 3 per message, the role and content, 3 to prime the reply.
	used := 3 + 3 + tok.Count(system.Role) + tok.Count(system.Content)
	for used < target {
		role := "user"
		if len(msgs)%2 == 0 {
			role = "assistant"
		}
		var sb strings.Builder
		sb.WriteString(nonceText())
		head := 3 + tok.Count(role)
		n := head + tok.Count(sb.String())
		for n < target-used && sb.Len() < maxMessageBytes {
			s := sentence(rng)
			sb.WriteString(s)
			n += tok.Count(s) // sentences start with a space: the sum is the count
		}
		msgs = append(msgs, chatMessage{Role: role, Content: sb.String()})
		used += n
	}
	req := map[string]any{"model": benchModel, "messages": msgs}
	if stream {
		req["stream"] = true
	}
	return json.Marshal(req)
}

func nonceText() string { return noncePrefix + strings.Repeat("0", nonceDigits) + "]" }

// sentence is " Word word, word … word." of 6 to 20 words.
func sentence(rng *rand.Rand) string {
	var sb strings.Builder
	n := 6 + rng.IntN(15)
	for i := range n {
		w := words[rng.IntN(len(words))]
		sb.WriteByte(' ')
		if i == 0 {
			sb.WriteString(strings.ToUpper(w[:1]) + w[1:])
		} else {
			sb.WriteString(w)
		}
		if i > 0 && i < n-1 && rng.IntN(8) == 0 {
			sb.WriteByte(',')
		}
	}
	sb.WriteByte('.')
	return sb.String()
}

// fill copies template i into buf with every nonce set to seq (mod 10^6) and returns
// the body. Each worker owns its buf: the server has read the whole body before the
// response that ends a request arrives, so the next request may overwrite it.
func (w *workload) fill(buf []byte, i int, seq uint64) []byte {
	t := &w.templates[i%len(w.templates)]
	buf = append(buf[:0], t.body...)
	var digits [nonceDigits]byte
	n := seq % nonceSpace
	for k := nonceDigits - 1; k >= 0; k-- {
		digits[k] = byte('0' + n%10)
		n /= 10
	}
	for _, off := range t.nonces {
		copy(buf[off:], digits[:])
	}
	return buf
}

// canonicalizeNonces sets every nonce of body to zeros, in place, and reports how many
// it found.
func canonicalizeNonces(body []byte) int {
	found := 0
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(noncePrefix))
		if j < 0 {
			return found
		}
		at := i + j + len(noncePrefix)
		if at+nonceDigits < len(body) && body[at+nonceDigits] == ']' && allDigits(body[at:at+nonceDigits]) {
			copy(body[at:], "000000")
			found++
		}
		i = at
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
