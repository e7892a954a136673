// Example parameters. azd fills AZURE_ENV_NAME and AZURE_LOCATION; set the others with
// `azd env set ENTRA_CLIENT_ID <app id>` and `azd env set VENDOR_NAME "Contoso Mail"`.
using 'main.bicep'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'm365-connector')
param location = readEnvironmentVariable('AZURE_LOCATION', 'eastus')
param entraClientId = readEnvironmentVariable('ENTRA_CLIENT_ID', '')
param vendorName = readEnvironmentVariable('VENDOR_NAME', 'Your software vendor')
param publicBaseUrl = readEnvironmentVariable('PUBLIC_BASE_URL', '')
param actionGroupId = readEnvironmentVariable('ALERT_ACTION_GROUP_ID', '')

param maximumInstanceCount = 100
param instanceMemoryMB = 2048
param alwaysReadyHttpInstances = 0
param logLevel = 'info'
