// umconnect: one subscription-scope deployment (azd up / az deployment sub create).
// Layout after Azure-Samples/functions-quickstart-typescript-azd: modules under app/.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to name and tag every resource.')
param environmentName string

@minLength(1)
@description('Azure region for all resources.')
param location string

@description('Application (client) id of the multi-tenant app registration (scripts/create-app-registration.sh).')
param appClientId string

@description('Public https base URL of the function app, for Graph notification URLs. Empty: the default *.azurewebsites.net host.')
param publicBaseUrl string = ''

@description('Object id of the deploying user or group, granted Key Vault Secrets Officer to load the voice-store secrets. Empty: none.')
param keyVaultAdminPrincipalId string = ''

@description('Highest number of instances the Flex Consumption plan may scale to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = '${abbrs.webSitesFunctions}umconnect-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: '${abbrs.managedIdentityUserAssignedIdentities}umconnect-${resourceToken}', location: location, tags: tags }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: '${abbrs.storageStorageAccounts}umc${resourceToken}', location: location, tags: tags }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: { logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}umconnect-${resourceToken}', appInsightsName: '${abbrs.insightsComponents}umconnect-${resourceToken}', location: location, tags: tags }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: { name: '${abbrs.keyVaultVaults}umc${resourceToken}', location: location, tags: tags }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    principalId: identity.outputs.principalId
    keyVaultAdminPrincipalId: keyVaultAdminPrincipalId
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}umconnect-${resourceToken}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    appClientId: appClientId
    publicBaseUrl: empty(publicBaseUrl) ? 'https://${functionAppName}.azurewebsites.net' : publicBaseUrl
    maximumInstanceCount: maximumInstanceCount
  }
  dependsOn: [ rbac ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
