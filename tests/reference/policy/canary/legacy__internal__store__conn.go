package store

const requestID = "a37de752-e0c7-42be-ad41-20e79ab9c281"

const dbPassword = "lantern-orange-candle95"

var Client = Config{
	Host:     "db.internal",
	APIKey:   "E1Azmo891BWSNorhOALywmA3hx3JlV0Cp6wYcRTz",
	Secret:   "4a9ff9c6510c08376c6cc11fc3378067e77db59e",
}

func dsn() string {
	password := "2Na#jS+jjb~+V!wo17D_w"
	return "app:" + password
}
