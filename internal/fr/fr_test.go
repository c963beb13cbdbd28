package fr

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	winter := time.Date(2026, 12, 2, 13, 5, 0, 0, time.UTC)
	summer := time.Date(2026, 7, 14, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ got, want string }{
		{DateTime(winter), "02/12/2026 à 14:05 CET"},
		{DateTime(summer), "14/07/2026 à 10:00 CEST"},
		{DateTime(time.Time{}), "jamais"},
		{Date(time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)), "01/01/2027"},
		{Number(0), "0"},
		{Number(999), "999"},
		{Number(21923), "21\u202f923"},
		{Number(-1234567), "-1\u202f234\u202f567"},
		{Duration(365 * 24 * time.Hour), "1 an"},
		{Duration(2 * 365 * 24 * time.Hour), "2 ans"},
		{Duration(60 * 24 * time.Hour), "60 jours"},
		{Duration(15 * time.Minute), "15 min"},
		{Duration(90 * time.Second), "1 min 30 s"},
		{Duration(150 * time.Minute), "2 h 30"},
		{Duration(5 * time.Hour), "5 h"},
		{Duration(28 * time.Second), "28 s"},
		{Duration(300 * time.Millisecond), "300 ms"},
		{Bytes(512), "512 o"},
		{Bytes(3500), "3,4 Ko"},
		{Bytes(488 << 20), "488 Mo"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
