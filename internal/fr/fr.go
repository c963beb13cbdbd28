// Package fr writes numbers, times and durations the way French readers
// expect them, for every place a person reads them: the command line and
// the dashboard. Times are always shown in Europe/Paris with the zone's
// abbreviation, so a reader never wonders whether a time is UTC.
package fr

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris even on a machine without a zone database
)

// Paris is the zone every time shown to people is written in.
var Paris = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic("fr: Europe/Paris missing despite time/tzdata: " + err.Error())
	}
	return loc
}()

// DateTime writes a moment as "02/12/2026 à 14:05 CET"; the zero time is
// "jamais".
func DateTime(t time.Time) string {
	if t.IsZero() {
		return "jamais"
	}
	return t.In(Paris).Format("02/01/2006 à 15:04 MST")
}

// Date writes a day as "02/12/2026", in Paris.
func Date(t time.Time) string {
	if t.IsZero() {
		return "jamais"
	}
	return t.In(Paris).Format("02/01/2006")
}

// thinSpace is the narrow no-break space French typography puts between
// groups of digits, so "21 923" never breaks across lines.
const thinSpace = "\u202f"

// Number writes an integer with French digit groups: 21 923.
func Number[T ~int | ~int64 | ~int32 | ~uint64 | ~uint32 | ~uint](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(thinSpace)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Bytes writes a size in the units a person reads: 512 o, 3,4 Ko,
// 488 Mo, 1,2 Go.
func Bytes(n int64) string {
	units := []string{"o", "Ko", "Mo", "Go", "To"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return Number(n) + " o"
	}
	if f < 10 {
		return strings.Replace(fmt.Sprintf("%.1f %s", f, units[i]), ".", ",", 1)
	}
	return fmt.Sprintf("%.0f %s", f, units[i])
}

// Duration writes a duration in words, rounded to its largest units:
// "1 an", "60 jours", "2 h 30", "15 min", "45 s".
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	const day = 24 * time.Hour
	switch {
	case d >= 365*day && d%(365*day) == 0:
		return plural(int64(d/(365*day)), "an", "ans")
	case d >= 2*day:
		return plural(int64((d+day/2)/day), "jour", "jours")
	case d >= time.Hour:
		h, m := int64(d/time.Hour), int64((d%time.Hour+time.Minute/2)/time.Minute)
		if m == 60 {
			h, m = h+1, 0
		}
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %02d", h, m)
	case d >= time.Minute:
		m, s := int64(d/time.Minute), int64((d%time.Minute+time.Second/2)/time.Second)
		if s == 60 {
			m, s = m+1, 0
		}
		if s == 0 || m >= 10 {
			return fmt.Sprintf("%d min", m)
		}
		return fmt.Sprintf("%d min %02d s", m, s)
	case d >= time.Second:
		return fmt.Sprintf("%d s", int64((d+time.Second/2)/time.Second))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func plural(n int64, one, many string) string {
	if n <= 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return Number(n) + " " + many
}
