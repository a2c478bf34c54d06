package protocol

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

type orderVectors struct {
	SkewMs int64 `json:"skewMs"`
	Cases  []struct {
		Name   string `json:"name"`
		Joined int64  `json:"joined"`
		Events []struct {
			Sender   string    `json:"sender"`
			Stamp    *Stamp    `json:"stamp"`
			Baseline *Stamp    `json:"baseline"`
			Want     Judgement `json:"want"`
		} `json:"events"`
	} `json:"cases"`
}

// TestOrderVectors runs the verdicts shared with the browser client.
func TestOrderVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/order_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v orderVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.SkewMs != OrderSkew.Milliseconds() || len(v.Cases) < 5 {
		t.Fatalf("vectors: skew %d ms, %d cases", v.SkewMs, len(v.Cases))
	}
	for _, c := range v.Cases {
		o := NewOrder(time.UnixMilli(c.Joined))
		for i, e := range c.Events {
			if e.Baseline != nil {
				o.Baseline(e.Sender, e.Baseline.Session, e.Baseline.Seq)
				continue
			}
			if err := e.Stamp.Validate(); err != nil {
				t.Fatalf("%s: event %d: %v", c.Name, i, err)
			}
			if got := o.Judge(e.Sender, *e.Stamp); got != e.Want {
				t.Errorf("%s: event %d (%s seq %d): %+v, want %+v", c.Name, i, e.Sender, e.Stamp.Seq, got, e.Want)
			}
		}
	}
}

func TestStampValidate(t *testing.T) {
	good := Stamp{Session: strings.Repeat("0f", 16), Seq: 1, Time: 1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Stamp{
		{Session: strings.Repeat("0F", 16), Seq: 1, Time: 1},
		{Session: "0f", Seq: 1, Time: 1},
		{Session: good.Session, Seq: 0, Time: 1},
		{Session: good.Session, Seq: 1, Time: 0},
		{Session: good.Session, Seq: 1<<53 + 1, Time: 1},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v passed", bad)
		}
	}
}

// TestOrderBounded: a sender cycling sessions and leaving huge gaps does
// not grow the receiver's memory beyond the bounds.
func TestOrderBounded(t *testing.T) {
	o := NewOrder(time.UnixMilli(1))
	for i := range 100 {
		sess := strings.Repeat(string("0123456789abcdef"[i%16]), 31) + string("0123456789abcdef"[i/16%16])
		o.Judge("m", Stamp{Session: sess, Seq: 1, Time: 2})
		o.Judge("m", Stamp{Session: sess, Seq: 1 << 40, Time: 2})
	}
	so := o.senders["m"]
	if len(so.sessions) != orderSessions || len(so.recent) != orderSessions {
		t.Fatalf("%d sessions kept, want %d", len(so.sessions), orderSessions)
	}
	for _, ss := range so.sessions {
		if len(ss.missing) > orderWindow {
			t.Fatalf("%d gaps kept, want at most %d", len(ss.missing), orderWindow)
		}
	}
}

// FuzzOrder feeds Order stamps from a hostile server: any JSON stamp, in
// any order. Judge must not panic, must accept only valid stamps, and must
// judge a second delivery of the same stamp as a duplicate or replay.
func FuzzOrder(f *testing.F) {
	f.Add([]byte(`{"sess":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","seq":3,"ts":5}`), uint8(0))
	f.Add([]byte(`{"sess":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","seq":9007199254740992,"ts":1}`), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, sender uint8) {
		o := NewOrder(time.UnixMilli(1 << 40))
		dec := json.NewDecoder(strings.NewReader(string(data)))
		for i := 0; i < 64; i++ {
			var st Stamp
			if dec.Decode(&st) != nil {
				return
			}
			if st.Validate() != nil {
				continue
			}
			who := string(rune('a' + sender%4))
			o.Judge(who, st)
			if v := o.Judge(who, st).Verdict; v != Duplicate && v != Replayed {
				t.Fatalf("second delivery of %+v judged %s", st, v)
			}
		}
	})
}
