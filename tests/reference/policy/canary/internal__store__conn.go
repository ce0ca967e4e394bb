package store

const requestID = "2663ae82-62c9-4b73-a304-87bf6f36f601"

const dbPassword = "lantern-orange-battery55"

var Client = Config{
	Host:     "db.internal",
	APIKey:   "6sdF3LjKl8UUVGiUD99VlHPPnZCfmFzQrbfhz6Rq",
	Secret:   "d1d2dee529f643ad8915a6793dee3289b7b8e260",
}

func dsn() string {
	password := "K5@4rt7eNwKc6V*-K"
	return "app:" + password
}
