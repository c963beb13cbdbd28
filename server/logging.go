package server

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/server/auth"
)

// logRequests writes one structured line per request: enough to follow a
// device's exchanges in the field (who, what, how long, how big), and
// never a header or body, so tokens and passwords stay out of the logs.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		// Let the error handler write the answer first, so the logged
		// status is the one the client received.
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("error handler failed", "err", herr)
		}
	}
	attrs := []any{
		"method", c.Method(),
		"path", c.Path(),
		"status", c.Response().StatusCode(),
		"ms", time.Since(start).Milliseconds(),
		"in", max(c.Request().Header.ContentLength(), 0), // as declared: Body() would read an unread stream
		"out", len(c.Response().Body()),
		"ip", c.IP(),
	}
	if p, ok := c.Locals(principalKey{}).(auth.Principal); ok {
		attrs = append(attrs, "user", p.UserID, "device", p.DeviceID)
	}
	s.log.Info("request", attrs...)
	return nil
}
