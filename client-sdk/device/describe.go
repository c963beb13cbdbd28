package device

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// Describe says in French, for the conseillère, what a Sync error means
// and what to do about it; the status shows it as the last error. The
// server's code stays in parentheses, for whoever helps her.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		what := map[syncproto.Code]string{
			syncproto.CodeUnauthorized:   "la session a expiré : reconnectez-vous (relais device login) ; rien de ce qui est sur la tablette n'est perdu",
			syncproto.CodeTokenExpired:   "la session a expiré : reconnectez-vous (relais device login) ; rien de ce qui est sur la tablette n'est perdu",
			syncproto.CodeDeviceRevoked:  "cet appareil a été révoqué : ses données locales ont été effacées",
			syncproto.CodeUserDisabled:   "ce compte a été désactivé : contactez votre coordinateur ou coordinatrice",
			syncproto.CodeClockAhead:     "la date ou l'heure de la tablette est en avance : corrigez-la dans les réglages, puis synchronisez à nouveau",
			syncproto.CodeRateLimited:    "trop de tentatives : patientez quelques minutes avant de réessayer",
			syncproto.CodeForbiddenScope: "des modifications ont été refusées par le serveur (voir relais device rejected)",
			syncproto.CodeInvalidRow:     "des modifications ont été refusées par le serveur (voir relais device rejected)",
			syncproto.CodeBadValue:       "des modifications ont été refusées par le serveur (voir relais device rejected)",
			syncproto.CodeUnknownTable:   "des modifications ont été refusées par le serveur (voir relais device rejected)",
			syncproto.CodeUnknownColumn:  "des modifications ont été refusées par le serveur (voir relais device rejected)",
			syncproto.CodeBadChange:      "des modifications ont été refusées par le serveur (voir relais device rejected)",
			syncproto.CodeInternal:       "le serveur a rencontré une erreur : réessayez plus tard ; rien de ce qui est sur la tablette n'est perdu",
		}[pe.Code]
		if what == "" {
			what = "le serveur a refusé l'échange"
		}
		return what + " (" + string(pe.Code) + ")"
	}
	if errors.Is(err, ErrNotLoggedIn) {
		return "cet appareil n'est pas connecté : lancez relais device login"
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused") {
		return "serveur injoignable : vérifiez la connexion, la synchronisation reprendra où elle s'est arrêtée ; rien n'est perdu"
	}
	return "la synchronisation s'est interrompue : " + err.Error()
}
