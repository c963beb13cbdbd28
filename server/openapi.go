package server

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPI is the OpenAPI 3 description of every route the server
// registers, written by hand; TestOpenAPIDescribesEveryRoute keeps it and
// the routes in step.
//
//go:embed openapi.json
var openAPI []byte

func handleOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(openAPI)
}
