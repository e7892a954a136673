// The one user-assigned managed identity of the connector. The Functions host uses it for its
// storage, the code for Key Vault, Tables, Queues and Blobs, Application Insights for ingestion
// (Authorization=AAD), and the vendor's Entra app trusts it as a federated credential.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
