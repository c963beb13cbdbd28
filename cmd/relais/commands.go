package main

import (
	"context"

	"github.com/relais-numerique/relais/bench"
)

// commands is every command of the binary, in the order help lists them.
// A new command is one line here.
var commands = []command{
	{path: "serve", summary: "démarrer le serveur (SQLite intégré)", run: runServe},
	{path: "demo", summary: "remplir un répertoire de données avec un département réaliste (Mayenne)", run: runDemo},
	{path: "bench", args: "SCENARIO|all", summary: "mesurer la synchronisation contre un vrai serveur (voir BENCHMARKS.md)", run: runBench},
	{path: "backup", summary: "sauvegarder la base du serveur, même pendant qu'il tourne (--to FICHIER)", run: runBackup},
	{path: "restore", summary: "restaurer une sauvegarde, serveur arrêté (--from FICHIER) ; avec --store, marquer restaurée une base PostgreSQL remise par pg_restore", run: runRestore},
	{path: "version", summary: "afficher la version de ce programme", run: runVersion},

	{path: "admin user add", summary: "créer un compte (mot de passe sur l'entrée standard)", run: runUserAdd},
	{path: "admin user list", summary: "lister les comptes", run: runUserList},
	{path: "admin user password", summary: "changer le mot de passe d'un compte (sur l'entrée standard)", run: runUserPassword},
	{path: "admin user disable", summary: "désactiver un compte : ses appareils ne synchronisent plus", run: runUserDisable},
	{path: "admin user enable", summary: "réactiver un compte désactivé", run: runUserEnable},
	{path: "admin device list", summary: "lister les appareils inscrits (d'un compte avec --email)", run: runDeviceList},
	{path: "admin device revoke", args: "ID", summary: "révoquer un appareil : refusé aussitôt, effacé à son prochain contact", run: runDeviceRevoke},
	{path: "admin keys rotate", summary: "signer les nouveaux jetons avec une nouvelle clé", run: runKeysRotate},
	{path: "admin coordination add", summary: "faire suivre un médiateur par un coordinateur, entre deux dates au besoin", run: runCoordinationAdd},
	{path: "admin coordination list", summary: "lister les coordinations", run: runCoordinationList},
	{path: "admin coordination remove", args: "ID", summary: "supprimer une coordination (sur tous les appareils à leur synchronisation)", run: runCoordinationRemove},
	{path: "admin retention run", summary: "anonymiser les bénéficiaires sans mise à jour depuis un an (ou --older-than)", run: runRetention},
	{path: "admin beneficiaire erase", summary: "effacer (anonymiser) un bénéficiaire sur tous les appareils", run: runErase},

	{path: "device login", summary: "inscrire cet appareil auprès d'un serveur (mot de passe sur l'entrée standard)", run: runDeviceLogin},
	{path: "device sync", summary: "synchroniser l'appareil avec son serveur", run: runDeviceSync},
	{path: "device status", summary: "afficher l'état de synchronisation de l'appareil", run: runDeviceStatus},
	{path: "device sql", args: "SQL", summary: "exécuter du SQL sur l'appareil et afficher le résultat", run: runDeviceSQL},
	{path: "device rejected", summary: "lister les modifications refusées par le serveur ; en renvoyer une corrigée (--retry) ou y renoncer (--dismiss)", run: runDeviceRejected},
	{path: "device erase", summary: "effacer (anonymiser) un bénéficiaire sur cet appareil ; envoyé à la synchronisation", run: runDeviceErase},

	// The benchmark harness re-executes this binary to run the server in
	// its own process, so its CPU time and memory are measured apart.
	{path: "bench _server", hidden: true, run: func(ctx context.Context, args []string, e *env) error {
		return bench.ServeChild(args, e.stdout)
	}},
}
