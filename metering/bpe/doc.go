// Package bpe counts tokens exactly as tiktoken does for the o200k_base and
// cl100k_base encodings, several times faster than github.com/pkoukk/tiktoken-go and in
// linear time on adversarial input.
//
// Counting has the two stages of tiktoken's EncodeOrdinary (special-token strings in the
// text are ordinary text). The text is first cut into pieces by hand-written state
// machines equivalent to each encoding's pre-tokenizer regexp, as
// github.com/dlclark/regexp2 (the engine pkoukk/tiktoken-go uses) runs it: same Unicode
// tables, same backtracking choices, and invalid UTF-8 turned into U+FFFD one byte at a
// time, as Go's []rune conversion does. A piece that is itself a token counts one. Any
// other piece is encoded with the backtracking algorithm of GitHub's bpe crate
// (github.com/github/rust-gems): the greedy longest-token walk is checked pair by pair
// against precomputed merge trees, which yields the same tokens as tiktoken's
// lowest-rank-first merging without its quadratic cost. Ranks come from the .tiktoken
// files embedded in github.com/pkoukk/tiktoken-go-loader, so nothing is fetched at run
// time; each encoding is built once, on first use, and is then safe for concurrent use.
package bpe
