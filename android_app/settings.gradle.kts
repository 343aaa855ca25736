pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()        // com.google.ai.edge.litert lives on Google's Maven
        mavenCentral()
    }
}

rootProject.name = "edgecnn-sample"
include(":app")
