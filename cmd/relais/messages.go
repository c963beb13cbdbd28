package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/syncproto"
)

// The French messages of the device commands: what happened and what to
// do, for a conseillère on the field. The server's error codes stay in
// English on the wire and in JSON; here they become sentences. These
// helpers are shared by every device command.

// peopleError is an error already worded for a person: run prints it as
// is, without the technical chain behind it.
type peopleError struct {
	msg   string
	cause error
}

func (p *peopleError) Error() string { return p.msg }
func (p *peopleError) Unwrap() error { return p.cause }

func says(cause error, format string, args ...any) error {
	return &peopleError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// saisies writes "1 saisie" or "26 saisies".
func saisies(n int) string {
	if n == 1 {
		return "1 saisie"
	}
	return fr.Number(n) + " saisies"
}

// explainExchange words an error of a login or a sync. pending is the
// number of changes still waiting on the device, or -1 for a login.
func explainExchange(err error, pending int) error {
	if err == nil {
		return nil
	}
	var pe *peopleError
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return says(err, "interrompu : %s restent sur l'appareil, elles partiront à la prochaine synchronisation", saisies(pending))
	}
	if errors.Is(err, device.ErrNotLoggedIn) {
		return says(err, "cet appareil n'est pas inscrit auprès d'un serveur : inscrivez-le avec « relais device login »")
	}
	switch syncproto.CodeOf(err) {
	case syncproto.CodeBadCredentials:
		return says(err, "adresse e-mail ou mot de passe incorrect : vérifiez-les et recommencez")
	case syncproto.CodeRateLimited:
		return says(err, "trop d'essais de connexion manqués : %s", retryAfter(err))
	case syncproto.CodeDeviceRevoked:
		return says(err, "cet appareil a été révoqué par l'administrateur et ses données locales ont été effacées ; pour le réutiliser, demandez à l'administrateur puis reconnectez-le avec « relais device login »")
	case syncproto.CodeUserDisabled:
		return says(err, "votre compte est désactivé : %s restent sur l'appareil ; contactez l'administrateur", saisies(pending))
	case syncproto.CodeUnauthorized, syncproto.CodeTokenExpired:
		return says(err, "votre session a expiré : reconnectez l'appareil avec « relais device login » ; vos %s restent sur l'appareil", saisies(pending))
	case syncproto.CodeClockAhead:
		return says(err, "la date ou l'heure de cet appareil est en avance : corrigez-la dans les réglages puis synchronisez à nouveau")
	case syncproto.CodeInternal:
		return says(err, "le serveur a rencontré une erreur : %s restent sur l'appareil ; réessayez plus tard et prévenez l'administrateur si cela dure", saisies(pending))
	case syncproto.CodeBadChange, syncproto.CodeBadValue, syncproto.CodeUnknownTable, syncproto.CodeUnknownColumn,
		syncproto.CodeInvalidRow, syncproto.CodeForbiddenScope:
		return says(err, "le serveur a refusé des modifications (%s) : elles sont mises de côté sur l'appareil, « relais device status » les compte ; prévenez votre coordinateur", syncproto.CodeOf(err))
	case "":
	default:
		return says(err, "le serveur a refusé l'échange (%s) : %s restent sur l'appareil ; prévenez l'administrateur", syncproto.CodeOf(err), saisies(pending))
	}
	if unreachable(err) && pending < 0 {
		return says(err, "Serveur injoignable : vérifiez le réseau et l'adresse du serveur, puis recommencez")
	}
	if unreachable(err) {
		return says(err, "Serveur injoignable : vos %s restent sur l'appareil, elles partiront à la prochaine connexion. Vérifiez le réseau, ou l'adresse du serveur", saisies(pending))
	}
	return err
}

// storedError words the last error a replica kept (the SDK stores its
// English text): the error codes and an unreachable server become the
// sentences a sync would print; anything else is shown as it is.
func storedError(s string, pending int) string {
	if strings.Contains(s, "server unreachable") {
		return explainExchange(errors.New(s), pending).Error()
	}
	for _, code := range []syncproto.Code{syncproto.CodeBadCredentials, syncproto.CodeRateLimited, syncproto.CodeDeviceRevoked,
		syncproto.CodeUserDisabled, syncproto.CodeUnauthorized, syncproto.CodeTokenExpired, syncproto.CodeClockAhead,
		syncproto.CodeInternal, syncproto.CodeForbidden} {
		if strings.Contains(s, string(code)+":") {
			return explainExchange(&syncproto.Error{Code: code}, pending).Error()
		}
	}
	return s
}

// unreachable says whether err is a failure to reach the server at all.
func unreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	var ue *url.Error
	return errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) || errors.As(err, &ue) ||
		strings.Contains(err.Error(), "server unreachable")
}

// retryAfter says how long to wait, from the server's retry_after_seconds.
func retryAfter(err error) string {
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		var secs int
		switch v := pe.Details[syncproto.DetailRetryAfterSeconds].(type) {
		case float64:
			secs = int(v)
		case string:
			secs, _ = strconv.Atoi(v)
		}
		if secs > 0 {
			return "réessayez dans " + fr.Duration(time.Duration(secs)*time.Second)
		}
	}
	return "attendez un quart d'heure avant de réessayer"
}

// checkServerURL refuses an address a login could not use, before any
// file is touched.
func checkServerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		hint := raw
		if !strings.Contains(raw, "://") {
			hint = "http://" + raw
		}
		return usagef("l'adresse du serveur « %s » doit commencer par http:// ou https:// : écrivez par exemple --server %s", raw, hint)
	}
	return nil
}

var (
	reUnique   = regexp.MustCompile(`UNIQUE constraint failed: ([\w.]+)`)
	reNotNull  = regexp.MustCompile(`NOT NULL constraint failed: ([\w.]+)`)
	reCheck    = regexp.MustCompile(`CHECK constraint failed: (.+)`)
	reSyntax   = regexp.MustCompile(`near "(.*)": syntax error`)
	reNoTable  = regexp.MustCompile(`no such table: ([\w.]+)`)
	reNoColumn = regexp.MustCompile(`no such column: ([\w.]+)`)
	reNoFunc   = regexp.MustCompile(`no such function: (\w+)`)
	reRelais   = regexp.MustCompile(`relais: (\w+)\.id must be a UUID`)
)

// explainSQL words an error of SQLite for a person typing SQL.
func explainSQL(err error) error {
	s := err.Error()
	if m := reRelais.FindStringSubmatch(s); m != nil {
		return says(err, "chaque ligne de %s a besoin d'un identifiant : ajoutez par exemple id = uuid() (la fonction uuid() en fabrique un)", m[1])
	}
	if m := reUnique.FindStringSubmatch(s); m != nil {
		return says(err, "une ligne avec la même valeur de %s existe déjà : rien n'a été écrit", m[1])
	}
	if m := reNotNull.FindStringSubmatch(s); m != nil {
		return says(err, "%s est obligatoire : rien n'a été écrit", m[1])
	}
	if m := reCheck.FindStringSubmatch(s); m != nil {
		return says(err, "valeur refusée par la règle « %s » : rien n'a été écrit", m[1])
	}
	if m := reSyntax.FindStringSubmatch(s); m != nil {
		return says(err, "erreur de syntaxe SQL près de « %s »", m[1])
	}
	if strings.Contains(s, "incomplete input") {
		return says(err, "instruction SQL incomplète : il manque peut-être une parenthèse ou un guillemet fermant")
	}
	if m := reNoTable.FindStringSubmatch(s); m != nil {
		return says(err, "pas de table %s sur l'appareil", m[1])
	}
	if m := reNoColumn.FindStringSubmatch(s); m != nil {
		return says(err, "pas de colonne %s", m[1])
	}
	if m := reNoFunc.FindStringSubmatch(s); m != nil {
		return says(err, "pas de fonction SQL %s()", m[1])
	}
	return says(err, "SQLite refuse : %s", s)
}
